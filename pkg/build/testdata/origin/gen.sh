#!/bin/sh
# Builds the ELF fixtures of TestClosureOrigin (checked in: the unit tests
# need no compiler). Run from this directory: sh gen.sh
#   bin/app       RUNPATH $ORIGIN/../lib1, needs libone.so
#   lib1/libone.so RUNPATH ${ORIGIN}/../lib2, needs libtwo.so
#   lib2/libtwo.so needs only libc
#   bin/app-rpath  RPATH (old tags) $ORIGIN/../lib1:$ORIGIN/../lib2, needs libone.so
set -e
mkdir -p bin lib1 lib2
printf 'int two(void){return 2;}\n' > /tmp/two.c
printf 'int two(void); int one(void){return two()-1;}\n' > /tmp/one.c
printf 'int one(void); int main(void){return one()-1;}\n' > /tmp/app.c
gcc -Os -s -shared -fPIC -o lib2/libtwo.so /tmp/two.c
gcc -Os -s -shared -fPIC -o lib1/libone.so /tmp/one.c -Llib2 -ltwo '-Wl,-rpath,${ORIGIN}/../lib2' -Wl,--enable-new-dtags
gcc -Os -s -o bin/app /tmp/app.c -Llib1 -lone '-Wl,-rpath,$ORIGIN/../lib1' -Wl,--enable-new-dtags -Wl,-rpath-link,lib2
gcc -Os -s -o bin/app-rpath /tmp/app.c -Llib1 -lone '-Wl,-rpath,$ORIGIN/../lib1:$ORIGIN/../lib2' -Wl,--disable-new-dtags -Wl,-rpath-link,lib2
rm -f /tmp/one.c /tmp/two.c /tmp/app.c
