package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records whether the check failed.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.golden")
	if err := os.WriteFile(path, []byte("rendered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		got      string
		path     string
		wantFail bool
	}{
		{"rendered\n", path, false},
		{"rendered", path, true},
		{"rendered\n", path + ".missing", true},
	} {
		r := &recorder{TB: t}
		Check(r, tc.path, []byte(tc.got))
		if r.failed != tc.wantFail {
			t.Errorf("Check(%q, %q) failed = %v, want %v", tc.path, tc.got, r.failed, tc.wantFail)
		}
	}
}
