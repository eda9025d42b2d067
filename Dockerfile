# The journeys image: one image, two roles (`journeys worker`, `journeys api`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY worker.py ./
COPY templates ./templates
RUN pip install --no-cache-dir '.[postgres]'
USER nobody
CMD ["journeys", "worker"]
