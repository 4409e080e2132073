// Package config is the agent's one typed configuration.
//
// Load reads, in this order and each over the previous: the built-in
// defaults (Default), one YAML file (LoadOptions.ConfigFile, else
// $SSW_CONFIG_FILE, else the embedded configs/config.yaml), and the
// environment ($LOKI_URL, $LOG_LEVEL, $LOG_FORMAT). The YAML is parsed
// strictly: an unknown key, a duplicate key or a value of the wrong type is
// an error naming the dotted key and the file. Every problem is reported at
// once.
//
// Semantics worth knowing:
//   - A list or map (files_config.include, .exclude, .labels, ...) given in
//     the file replaces the default whole. An absent key keeps the default;
//     an explicit [] or {} means none; an empty value ("include:" with
//     nothing after it) is refused as ambiguous.
//   - An empty section ("containers:" alone) and an empty scalar set nothing.
//   - sinks.loki.enabled defaults to "url is set"; LOKI_URL sets the URL and
//     enables the sink. sinks.file.enabled defaults to "Loki is not
//     enabled"; sinks.file.path to <data_dir>/sink/logs.jsonl.
//   - Relative paths (data_dir, sinks.file.path, the *_file keys) are
//     relative to the working directory, not to the config file.
//   - The pipelines file is only checked to be one valid YAML document; its
//     schema arrives with the pipelines work. The file-routing file
//     ($SSW_FILE_CONFIG, else file_pipeline.yml next to the main file, else
//     the embedded one) is parsed as strictly into Config.FilePipeline
//     (routes: name, match, labels, multiline) and validated at load, every
//     error naming that file, the key and the line.
//
// Validate does no I/O. Load also reads the file-backed secrets of an enabled
// Loki sink (password_file, bearer_token_file) and checks its CA file.
// Redacted and Summary never show secrets. JSON output (MarshalJSON, Map)
// uses the YAML keys and readable durations and sizes, so /config serves
// json.Marshal(cfg.Redacted()).
package config
