# The Appstrate image: web (daphne), worker (celery) and scheduler run from it with different
# commands (docker-compose.yml). Build: docker build -t appstrate .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APPSTRATE_DATA_DIR=/data

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .

RUN useradd --system --home-dir /data appstrate && mkdir -p /data && chown appstrate /data
USER appstrate
VOLUME /data
EXPOSE 8000

CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "appstrate.asgi:application"]
