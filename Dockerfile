# One image for every EventMart process; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY eventmart ./eventmart
COPY domain ./domain
COPY projections ./projections
COPY workers ./workers
COPY api ./api
COPY entrypoints ./entrypoints
COPY kafka ./kafka
# editable: the code stays in /app, beside kafka/topics.yaml that it reads at run time
RUN pip install --no-cache-dir -e .
ENV EVENTMART_API_HOST=0.0.0.0
ENTRYPOINT ["eventmart"]
