# One small image for every Stratos role:
#   docker build -t stratos .
#   docker run stratos relay|proxy|sat [FLAGS...]
# The entrypoint (scripts/stratos.sh) runs the bundled service (dist/ROLE.js, no npm download
# at start) as a non-root user with the narrowest Deno permissions its flags allow: writes only
# to /var/lib/stratos/ROLE, network only to the addresses its flags name, environment by name
# (the proxy: any name, for env(NAME) in the Directive). See README "Containers".

# Build: bundle relay, proxy and sat into dist/ (npm packages fetched here, once).
FROM denoland/deno:2.9.6 AS build
WORKDIR /build
COPY deno.json deno.lock ./
COPY src/ src/
COPY scripts/ scripts/
RUN deno install --frozen && deno task bundle

# Run: Deno on Alpine, the three bundles, the launcher.
FROM denoland/deno:alpine-2.9.6
LABEL org.opencontainers.image.title="stratos" \
      org.opencontainers.image.description="Stratos relay, proxy and sat (deno)"
ENV STRATOS_HOME=/var/lib/stratos \
    STRATOS_DIST=/app \
    DENO_DIR=/tmp/deno \
    DENO_NO_UPDATE_CHECK=1 \
    NO_COLOR=1
RUN addgroup -S -g 10001 stratos \
    && adduser -S -D -H -u 10001 -G stratos -h /var/lib/stratos stratos \
    && mkdir -p /var/lib/stratos /srv/stratos \
    && chown stratos:stratos /var/lib/stratos \
    && chmod 0700 /var/lib/stratos
COPY --from=build /build/dist/relay.js /build/dist/proxy.js /build/dist/sat.js /app/
COPY scripts/stratos.sh /app/stratos.sh
USER stratos
# Relative paths (the default Directive.yaml, runnables beside it) are read from here: mount
# your Directive, runnables/ and static/ at /srv/stratos.
WORKDIR /srv/stratos
VOLUME ["/var/lib/stratos"]
EXPOSE 4000 8080
ENTRYPOINT ["/bin/sh", "/app/stratos.sh"]
CMD ["--help"]
