// Package images holds the recipes of the test images (build.sh, run by
// mk/images.mk into bin/images/); its test checks the images that were built.
package images
