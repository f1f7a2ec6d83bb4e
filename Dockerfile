# imapd in a container: see README "Docker". Build: docker build -t imapd .
# Ports (unprivileged, so the server never needs root or CAP_NET_BIND_SERVICE; publish them as
# 143/993/24 on the host if you like): 1143 IMAP, 2424 LMTP, and 1993 for IMAPS: add
# `--listen-tls 0.0.0.0:1993 --tls-cert-file FILE` (or IMAPD_LISTEN_TLS, IMAPD_TLS_CERT_FILE).
FROM python:3.11-slim

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    IMAPD_DATA_DIR=/data

# /data is 0700: a named volume is created from it with this mode (mail and password hashes
# are the imapd user's only); imapd itself creates its files 0600 (umask 077).
RUN python3 -m venv /opt/venv \
 && useradd --user-group --no-create-home --uid 10143 --home-dir /data --shell /usr/sbin/nologin imapd \
 && mkdir -p /data /run/imapd /etc/imapd \
 && chown imapd:imapd /data /run/imapd \
 && chmod 0700 /data /run/imapd

WORKDIR /src
# Optional extras, e.g. --build-arg IMAPD_EXTRAS='[postgres]' (docker-compose.cluster.yml).
ARG IMAPD_EXTRAS=""
# Dependencies first (their layer is reused until pyproject.toml changes), then the code.
COPY pyproject.toml ./
RUN mkdir imapd store notify && touch README.md \
 && pip install --quiet ".${IMAPD_EXTRAS}" && pip uninstall --quiet -y imapd
COPY README.md ./
COPY imapd ./imapd
COPY store ./store
COPY notify ./notify
RUN pip install --quiet --no-deps . && rm -rf /src/build /src/*.egg-info

COPY docker/imapd.toml /etc/imapd/imapd.toml
COPY docker/entrypoint.sh /usr/local/bin/imapd-entrypoint

USER imapd
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1143 1993 2424

# `imapd healthcheck` connects and expects the "* OK" greeting.
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
  CMD ["imapd", "healthcheck", "--port", "1143", "--timeout", "3"]

# The entrypoint seeds IMAPD_USERS, then execs imapd: the server is PID 1 and gets SIGTERM.
ENTRYPOINT ["imapd-entrypoint"]
CMD ["serve", "--config", "/etc/imapd/imapd.toml", "--data-dir", "/data", \
     "--listen", "0.0.0.0:1143", "--lmtp", "0.0.0.0:2424"]
