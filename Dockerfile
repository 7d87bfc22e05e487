# One image for both programs: `shipper tail` and `mtga start` (foreground).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY mulog ./mulog
COPY offsets ./offsets
COPY shipper ./shipper
COPY sink ./sink
RUN pip install --no-cache-dir -c constraints.txt . && useradd --uid 10001 --create-home mulog
COPY conf ./conf
RUN mkdir -p /app/demo/logs /app/demo/state /app/demo/output && chown -R mulog /app/demo
USER mulog
