// Package expand expands a container's command and args as the kubelet
// does, for tests that run an injected container's command line
// themselves: $(NAME) becomes the value of NAME when it is defined and
// stays as it is otherwise, and $$ becomes $, which is how a literal
// $(NAME) is written.
//
// Tests alone import it; it imports nothing of weft.
package expand

import "strings"

// Expand expands s with vars.
func Expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
