package stage1kit

import "io"

// CRLF returns a writer that turns the pod console's \r\n line ends (a
// terminal's line discipline adds the \r) back into \n before w.
func CRLF(w io.Writer) io.Writer { return &crlf{w: w} }

type crlf struct {
	w  io.Writer
	cr int // pending \r bytes
}

func (c *crlf) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+c.cr)
	for _, b := range p {
		switch {
		case b == '\r':
			c.cr++
			continue
		case b != '\n':
			for ; c.cr > 0; c.cr-- {
				out = append(out, '\r')
			}
		}
		c.cr = 0
		out = append(out, b)
	}
	_, err := c.w.Write(out)
	return len(p), err
}
