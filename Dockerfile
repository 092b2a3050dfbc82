# syntax=docker/dockerfile:1
# The retake.tv broadcast appliance: Xvfb, openbox, PulseAudio, the content window and the
# controller (`appliance live`, which runs FFmpeg) under supervisord, started by
# `appliance up` under tini. Build: docker build -t retake-appliance .
#
# Layers from slowest-changing to fastest: Debian packages, Python dependencies (from
# pyproject.toml only), then the appliance's own code and the process-tree files, so a code
# change rebuilds only the last, small layers.
FROM debian:bookworm-slim

# 1. Debian packages (the same list as scripts/setup.sh, minus what only tests use).
#    fonts-dejavu-core: xterm -fa Monospace needs a TrueType font. nginx + the RTMP module
#    serve `appliance sandbox`'s ingest (the compose `sandbox` profile). supervisord comes
#    from the venv (a project dependency), not from Debian. No docs, man pages or
#    translations (dpkg path-exclude; copyright files stay), no .deb cache (apt-get clean).
#    No OpenGL: xvfb depends on Mesa's DRI drivers (and through them LLVM, ~165 MB), which
#    only GLX clients use; nothing here is one (xterm, openbox, FFmpeg's x11grab use core X
#    and MIT-SHM), so the drivers and the libraries only they link are removed.
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
      > /etc/dpkg/dpkg.cfg.d/01-slim \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      xvfb openbox xterm x11-utils fonts-dejavu-core \
      pulseaudio pulseaudio-utils ffmpeg espeak-ng scrot \
      nginx libnginx-mod-rtmp \
      python3 python3-venv tini ca-certificates \
      libcairo2 libpango-1.0-0 libpangocairo-1.0-0 libxcb1 fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
 && rm -f /usr/lib/*-linux-gnu/dri/*_dri.so /usr/lib/*-linux-gnu/libLLVM-15.so.1 \
          /usr/lib/*-linux-gnu/libz3.so.4 \
 && mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix

# 2. An unprivileged user; /config (the YAML, read-only) and /state (credentials, logs).
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin appliance \
 && mkdir -p /config /state \
 && chown appliance:appliance /config /state

# 3. Python dependencies, read from pyproject.toml (only this file invalidates the layer).
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml /tmp/build/pyproject.toml
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/build/requirements.txt \
 && pip install -r /tmp/build/requirements.txt \
 && rm -rf /tmp/build

# 4. The appliance itself, and the process tree's files in APPLIANCE_HOME.
COPY pyproject.toml README.md* /tmp/build/
COPY appliance /tmp/build/appliance
RUN pip install --no-deps /tmp/build && rm -rf /tmp/build
COPY supervisord.conf /opt/appliance/supervisord.conf
COPY conf.d /opt/appliance/conf.d
COPY overlays /opt/appliance/overlays
COPY scripts/lib.sh scripts/start-*.sh scripts/on-controller-exit.py scripts/openbox-rc.xml /opt/appliance/scripts/

VOLUME ["/config", "/state"]

# Only what the container itself decides; everything else comes from /config/appliance.yaml
# (the APPLIANCE_* variables the tree reads are computed by `appliance up`).
ENV APPLIANCE_IN_CONTAINER=1 \
    APPLIANCE_HOME=/opt/appliance \
    PYTHONUNBUFFERED=1
USER appliance
WORKDIR /state

# The control API answers on 127.0.0.1:8787 (control.port); /health needs no token.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8787/health', timeout=4)"]

ENTRYPOINT ["tini", "--"]
CMD ["appliance", "up", "--config", "/config/appliance.yaml"]
