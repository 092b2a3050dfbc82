# syntax=docker/dockerfile:1
# The retake.tv broadcast appliance: Xvfb, openbox, PulseAudio, the content window and the
# controller (`appliance live`, which runs FFmpeg) under supervisord, started by
# `appliance up` under tini. Build: docker build -t retake-appliance .
#
# Stages: `system` (Debian packages, the user), `pydeps` (the venv with the dependencies
# from pyproject.toml), `app` (the appliance's wheel, which carries the process-tree files as
# package data). The final image is `scratch` plus one copy of each, so what a stage deletes
# (apt's lists and caches, docs, locales, pip itself) is really gone instead of hidden under
# a whiteout, and a code change rebuilds only the last, small layer.
# Sizes per layer and the commands that measure them: README, "Image size".
ARG FONTS=scene

FROM debian:bookworm-slim AS system
ARG FONTS
# 1. Debian packages (the same list as scripts/setup.sh, minus what only tests use).
#    fonts-dejavu-core: xterm -fa Monospace needs a TrueType font. nginx + the RTMP module
#    serve `appliance sandbox`'s ingest (the compose `sandbox` profile and `appliance
#    rehearse`). supervisord comes from the venv (a project dependency), not from Debian.
#    No scrot: thumbnails fall back to FFmpeg's x11grab (appliance/media/display.py), and
#    scrot's imlib2 loaders pull in ghostscript, poppler and more (~60 MB).
#    FONTS=scene (default) adds what the scene renderer draws text with: Noto Sans for the
#    main scripts (a subset of fonts-noto-core), Noto Sans CJK (not Serif) and Noto Color
#    Emoji; FONTS=none leaves them out (to measure what they cost).
#    Removed after install: docs, man pages and translations (dpkg path-exclude; copyright
#    files stay); Mesa's DRI drivers and LLVM (~165 MB: only GLX clients load them, and
#    nothing here is one: xterm, openbox and x11grab use core X and MIT-SHM); Intel Media SDK's
#    hardware plug-ins (dlopen'ed by libmfx for QSV, which a VPS has not got); imlib2's
#    PostScript loader (openbox never shows a .ps icon) and what only it pulls in: ghostscript,
#    its URW fonts and poppler's data (~55 MB); iso-codes' tables (~20 MB, for GStreamer tag
#    names nobody asks for). A check at the end fails the build if any program the appliance
#    runs lost a library it links.
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
      'path-exclude=/usr/share/lintian/*' > /etc/dpkg/dpkg.cfg.d/01-slim \
 && fonts="" && if [ "$FONTS" = scene ]; then fonts="fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji"; fi \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      xvfb openbox xterm tmux dtach x11-utils fonts-dejavu-core $fonts \
      pulseaudio pulseaudio-utils ffmpeg espeak-ng \
      nginx libnginx-mod-rtmp \
      python3 python3-venv tini ca-certificates \
      libcairo2 libpango-1.0-0 libpangocairo-1.0-0 libxcb1 \
 && if [ "$FONTS" = scene ]; then \
      find /usr/share/fonts/truetype/noto -name '*.ttf' ! -name 'NotoColorEmoji.ttf' \
        | grep -Ev '/NotoSans(Mono|Symbols|Symbols2|Math|Arabic|Hebrew|Devanagari|Thai|Bengali|Tamil|Armenian|Georgian|Ethiopic|Khmer|Lao|Myanmar|Sinhala|Gujarati|Gurmukhi|Kannada|Malayalam|Telugu|Oriya)?-(Regular|Bold)\.ttf$' \
        | xargs -r rm -f \
      && rm -f /usr/share/fonts/opentype/noto/NotoSerifCJK-*.ttc; \
    fi \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/* \
           /usr/share/doc/*/changelog* /usr/share/locale/* /usr/share/man/* /usr/share/info/* \
 && find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete \
 && rm -f /usr/lib/*-linux-gnu/dri/*_dri.so /usr/lib/*-linux-gnu/libLLVM-15.so.1 \
          /usr/lib/*-linux-gnu/libz3.so.4 /usr/lib/*-linux-gnu/libmfxhw64.so* \
          /usr/lib/*-linux-gnu/imlib2/loaders/ps.so /usr/lib/*-linux-gnu/libspectre.so.1* \
          /usr/lib/*-linux-gnu/libgs.so.10* \
 && rm -rf /usr/lib/*-linux-gnu/mfx /usr/share/ghostscript /usr/share/poppler /usr/share/fonts/type1/urw-base35 \
           /usr/share/fonts/opentype/urw-base35 /usr/share/iso-codes /usr/share/xml/iso-codes \
 && for bin in Xvfb openbox xterm tmux dtach xdpyinfo xprop ffmpeg ffprobe pulseaudio pactl paplay espeak-ng nginx python3 tini; do \
      if ldd "$(command -v $bin)" | grep 'not found'; then echo "$bin lost a library"; exit 1; fi; done \
 && for lib in /usr/lib/*-linux-gnu/imlib2/loaders/*.so /usr/lib/nginx/modules/*.so /usr/lib/*-linux-gnu/pulseaudio/*.so; do \
      if ldd "$lib" | grep 'not found'; then echo "$lib lost a library"; exit 1; fi; done
# 2. Two unprivileged users (docs/security.md): `appliance` runs every program; `appliance-shell`
#    runs the on-screen shell (a real shell: bash) and cannot read the state, the runtime folder,
#    the secrets or appliance's processes. /config (the YAML, read-only), /state (credentials,
#    logs), /run/secrets (mounted secret files: only root may enter; `appliance up` reads them
#    once and hands them to the tree as files of appliance's own).
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin appliance \
 && useradd --uid 10002 --user-group --create-home --shell /bin/bash appliance-shell \
 && mkdir -p /config /state /run/secrets \
 && chown appliance:appliance /config /state \
 && chmod 0700 /state /run/secrets

# 3. Python dependencies, read from pyproject.toml (only this file invalidates the layer).
FROM system AS pydeps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml /tmp/build/pyproject.toml
RUN python3 -m venv /opt/venv \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/build/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/build/requirements.txt \
 && /opt/venv/bin/python -c "import pangocairocffi" \
 && rm -rf /tmp/build
# (pangocffi and pangocairocffi make their _generated/ folder at first import: here, since
#  site-packages is read-only for the appliance user at run time)

# the venv as it ships: no pip or setuptools (nothing installs at run time)
FROM pydeps AS venv
RUN /opt/venv/bin/python -m pip uninstall -y -q pip setuptools \
 && find /opt/venv -name '__pycache__' -path '*/pip/*' -prune -exec rm -rf {} +

# 4. The appliance's wheel (the process tree's files inside it), installed beside the venv.
FROM pydeps AS app
COPY . /tmp/build
RUN /opt/venv/bin/pip install -q --no-deps --target /out/site /tmp/build \
 && mkdir -p /out/bin && mv /out/site/bin/appliance /out/bin/ && rm -rf /out/site/bin

FROM scratch
COPY --from=system / /
COPY --from=venv /opt/venv /opt/venv
COPY --from=app /out/site/ /opt/venv/lib/python3.11/site-packages/
COPY --from=app /out/bin/appliance /opt/venv/bin/appliance

VOLUME ["/config", "/state"]

# Only what the container itself decides; everything else comes from /config/appliance.yaml
# (the APPLIANCE_* variables the tree reads are computed by `appliance up`). The process
# tree's files come from the installed package (APPLIANCE_HOME overrides). Everything the
# tree writes outside /state goes under /tmp (the runtime folder, X's socket folder, which
# Xvfb creates, and the caches of openbox and fontconfig: XDG_CACHE_HOME), so the root
# filesystem can be read-only with one tmpfs (compose) or emptyDir (Kubernetes) on /tmp.
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    APPLIANCE_IN_CONTAINER=1 APPLIANCE_USER=appliance APPLIANCE_SHELL_USER=appliance-shell \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/appliance XDG_CACHE_HOME=/tmp/cache LANG=C.UTF-8
# Started as root, for as long as needed (appliance/up/privileges.py, docs/security.md): `appliance
# up` gives /state to appliance and reads the mounted secrets; supervisord then stays root only
# to start each program as its user. Every other command (`docker exec ... appliance status`)
# becomes appliance at once (the healthcheck's probe only reads /state/control.json and asks
# /health). Capabilities it needs, and no more: CHOWN,
# DAC_OVERRIDE, FOWNER, SETUID, SETGID, KILL (compose.yaml's cap_add).
WORKDIR /state

# /health (no token) on the control port the appliance chose and wrote to /state: the probe
# reads it there, so a configured or free port works, not only 8787. Exit 0 healthy, 1 not.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["appliance", "probe", "health"]

# `appliance` is the entrypoint, so `docker run IMAGE init|register|status ...` and
# `docker compose run --rm appliance register` run a subcommand; the default is `up`.
ENTRYPOINT ["tini", "--", "appliance"]
CMD ["up", "--config", "/config/appliance.yaml"]
