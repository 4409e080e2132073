// Package configs holds the default YAML files shipped inside the binary:
// the main configuration, the pipelines file and the file-to-pipeline routing
// file. The same files live in the repository so operators can copy and edit
// them; the binary falls back to these embedded copies when no file is named.
//
// The embedded bytes are never handed out directly: every accessor returns a
// fresh copy, so no caller can change what another caller sees.
package configs

import (
	"bytes"
	_ "embed" // for go:embed
)

// File names of the shipped defaults, as they appear in this directory.
const (
	ConfigName       = "config.yaml"
	PipelinesName    = "pipelines.yaml"
	FilePipelineName = "file_pipeline.yml"
)

var (
	//go:embed config.yaml
	configYAML []byte
	//go:embed pipelines.yaml
	pipelinesYAML []byte
	//go:embed file_pipeline.yml
	filePipelineYAML []byte
)

// ConfigYAML returns a copy of the embedded configs/config.yaml.
func ConfigYAML() []byte { return bytes.Clone(configYAML) }

// PipelinesYAML returns a copy of the embedded configs/pipelines.yaml.
func PipelinesYAML() []byte { return bytes.Clone(pipelinesYAML) }

// FilePipelineYAML returns a copy of the embedded configs/file_pipeline.yml.
func FilePipelineYAML() []byte { return bytes.Clone(filePipelineYAML) }
