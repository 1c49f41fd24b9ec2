# MLflow tracking server for the team (docker/docker-compose.yml builds it).
#
# The server's version stays within pyproject.toml's mlflow range (tests/test_docker.py
# checks it): clients and server of different major versions disagree on the REST API.
ARG MLFLOW_VERSION=3.17.2
FROM ghcr.io/mlflow/mlflow:v${MLFLOW_VERSION}

# The official image has no PostgreSQL driver; the backend store is PostgreSQL, reached
# with psycopg2 (the URI in docker-compose.yml names it: postgresql+psycopg2://). The pin is
# pyproject.toml's `server` extra, which the tests run the server with.
RUN pip install --no-cache-dir psycopg2-binary==2.9.13
