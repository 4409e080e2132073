package loki

import "testing"

func TestSanitizeLabelName(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"valid unchanged":        {"container_name", "container_name"},
		"valid with digits":      {"a1_b2", "a1_b2"},
		"leading underscore":     {"_x", "_x"},
		"reserved kept":          {"__name__", "__name__"},
		"upper case":             {"Host", "Host"},
		"docker compose key":     {"com.docker.compose.service", "com_docker_compose_service"},
		"dash and slash":         {"app.kubernetes.io/name", "app_kubernetes_io_name"},
		"leading digit":          {"1st", "_1st"},
		"only digits":            {"123", "_123"},
		"leading digit and dots": {"9.x", "_9_x"},
		"empty":                  {"", "_"},
		"space":                  {"a b", "a_b"},
		"unicode one per rune":   {"héllo", "h_llo"},
		"emoji":                  {"a🚀b", "a_b"},
		"invalid utf8 per byte":  {"a\xff\xfeb", "a__b"},
		"all invalid":            {"-.-", "___"},
		"colon":                  {"a:b", "a_b"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := SanitizeLabelName(tt.in)
			if got != tt.want {
				t.Fatalf("SanitizeLabelName(%q) = %q; want %q", tt.in, got, tt.want)
			}
			if !validLabelName(got) {
				t.Fatalf("result %q is not a valid label name", got)
			}
		})
	}
}

func TestSanitizeValidDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _ = SanitizeLabelName("com_docker_compose_service") })
	if allocs != 0 {
		t.Fatalf("allocated %v times for a valid name", allocs)
	}
}

func FuzzSanitizeLabelName(f *testing.F) {
	for _, s := range []string{"", "a", "1", "com.docker", "h\xffé", "__x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeLabelName(in)
		if !validLabelName(out) {
			t.Fatalf("SanitizeLabelName(%q) = %q: invalid", in, out)
		}
		if again := SanitizeLabelName(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		if validLabelName(in) && out != in {
			t.Fatalf("valid %q changed to %q", in, out)
		}
	})
}
