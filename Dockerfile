# The one image for the scheduler and the site agents (see helm/powerplane).
FROM python:3.11-slim
RUN useradd --uid 10001 --create-home powerplane
WORKDIR /opt/powerplane
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler
COPY agents ./agents
# agents/checkpointing.py imports powerplane_sdk (the contract training scripts use too)
COPY powerplane_sdk ./powerplane_sdk
# powerplane_dev (the local dev cluster and `powerplane demo`) stays out of the image: the
# production packages never import it (the import-linter contracts in pyproject.toml).
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER 10001
ENTRYPOINT ["powerplane"]
