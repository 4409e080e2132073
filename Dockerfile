# Image for log_capturer_go, built from the static binary (make build), FROM scratch:
# no shell, no package manager, nothing to patch but the binary itself.
#   make docker        (runs make build first)
# Run it hardened (see configs/docker-compose.yml): read-only root filesystem,
# non-root user, no capabilities, no-new-privileges, /var/log mounted read-only,
# a volume for data_dir.
FROM scratch
COPY bin/logcapturer /logcapturer
# CA roots for TLS to Loki (taken from the build host).
COPY docker/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY configs/config.yaml /etc/logcapturer/config.yaml
ENV SSW_CONFIG_FILE=/etc/logcapturer/config.yaml
USER 65534:65534
WORKDIR /var/lib/logcapturer
VOLUME ["/var/lib/logcapturer"]
EXPOSE 8401 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["/logcapturer", "health"]
ENTRYPOINT ["/logcapturer"]
CMD ["run"]
