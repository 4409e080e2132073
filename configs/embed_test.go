package configs

import (
	"bytes"
	"testing"
)

func TestAccessorsReturnCopies(t *testing.T) {
	for name, get := range map[string]func() []byte{
		ConfigName:       ConfigYAML,
		PipelinesName:    PipelinesYAML,
		FilePipelineName: FilePipelineYAML,
	} {
		t.Run(name, func(t *testing.T) {
			a := get()
			if len(a) == 0 {
				t.Fatalf("%s is empty", name)
			}
			orig := bytes.Clone(a)
			a[0] ^= 0xff
			if b := get(); !bytes.Equal(b, orig) {
				t.Fatalf("mutating one copy changed the next: %q", b[:1])
			}
		})
	}
}
