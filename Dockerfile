# storybot — one image, two roles: `storybot run` (scheduler + web, the default command) and
# `storybot worker` (render worker; compose.yaml runs both with PostgreSQL and Redis).
#   docker build -t storybot .                         (offline default, workers included)
#   docker build --build-arg EXTRAS=postgres,workers,mastodon -t storybot .
#   docker run -d -p 8080:8080 -v storybot-data:/data -e STORYBOT_ADMIN_TOKEN=… storybot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    STORYBOT_CONFIG=/config/config.toml \
    STORYBOT_ALEMBIC_DIR=/app/alembic

# espeak-ng speaks the offline narration; ffmpeg itself ships inside imageio-ffmpeg.
# `apt-get clean` matters on bases without Docker's apt-clean hook (~80 MB of package caches).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         espeak-ng fonts-dejavu-core \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY story_state ./story_state
COPY generation ./generation
COPY alembic ./alembic
COPY alembic.ini ./
# EXTRAS is declared here, not at the top, so another value reuses the apt layer above;
# an empty EXTRAS installs the package alone. The in-tree build leftovers are dropped;
# /app/alembic stays (STORYBOT_ALEMBIC_DIR) because migrations run from it.
ARG EXTRAS=postgres,workers
RUN pip install ".${EXTRAS:+[${EXTRAS}]}" \
    && rm -rf build ./*.egg-info \
    && storybot --help >/dev/null

# The default config, rewritten for the container: database and media under /data,
# web on all interfaces so the published port reaches it. The build fails if config.toml
# changes so that a rewrite no longer applies (rather than shipping a loopback-only image).
COPY config.toml /config/config.toml
RUN sed -i \
      -e 's|^url = "sqlite:///storybot.db"|url = "sqlite:////data/storybot.db"|' \
      -e 's|^root = "media"|root = "/data/media"|' \
      -e 's|^host = "127.0.0.1"|host = "0.0.0.0"|' \
      /config/config.toml \
    && grep -q '^url = "sqlite:////data/storybot.db"' /config/config.toml \
    && grep -q '^root = "/data/media"' /config/config.toml \
    && grep -q '^host = "0.0.0.0"' /config/config.toml \
    && grep -q '^port = 8080$' /config/config.toml \
    && useradd --create-home --uid 10001 --user-group storybot \
    && mkdir -p /data \
    && chown storybot:storybot /data

USER storybot
VOLUME ["/data"]
EXPOSE 8080
# Python's urllib rather than curl: no extra package; any error or non-2xx (503) fails it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["storybot", "run"]
