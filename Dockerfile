# The one image for the scheduler and the site agents (see helm/powerplane).
FROM python:3.11-slim
RUN useradd --uid 10001 --create-home powerplane
WORKDIR /opt/powerplane
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler
COPY agents ./agents
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER 10001
ENTRYPOINT ["powerplane"]
