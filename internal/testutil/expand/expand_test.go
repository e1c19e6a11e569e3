package expand

import "testing"

func TestExpand(t *testing.T) {
	vars := map[string]string{"POD_IP": "198.18.0.9", "EMPTY": ""}
	for in, want := range map[string]string{
		"--app-probe-address=$(POD_IP)": "--app-probe-address=198.18.0.9",
		"$(UNDEFINED) stays":            "$(UNDEFINED) stays",
		"$$(POD_IP) is a literal":       "$(POD_IP) is a literal",
		"a$$b":                          "a$b",
		"a$b $":                         "a$b $",
		"$(EMPTY)x":                     "x",
		"$(POD_IP":                      "$(POD_IP",
		`{"v":"$$$(POD_IP)"}`:           `{"v":"$198.18.0.9"}`,
	} {
		if got := Expand(in, vars); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
