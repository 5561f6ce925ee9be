# The `ldm` command line in a container, for Kubernetes (docs/scale-out.md). Two stages: Swift
# builds an MPI-enabled `ldm` with the Swift runtime linked in, and a slim Debian image runs it
# with only the C libraries it loads.
#   docker build -t ldm .
#   docker run --rm -v "$PWD/out:/out" ldm txt2img --prompt "a red circle above a blue square" --output /out/image.png
FROM swift:6.3-bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        libpng-dev libopenblas-dev pkg-config libfreetype-dev libharfbuzz-dev libsqlite3-dev libdnnl-dev openmpi-bin libopenmpi-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --product ldm --traits MPI --static-swift-stdlib --scratch-path /build

FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libpng16-16 libopenblas0 libfreetype6 libharfbuzz0b libsqlite3-0 libdnnl2 openmpi-bin libopenmpi3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/release/ldm /usr/local/bin/ldm
# The shipped Shapes model is the default model (ldm looks for Checkpoints/ beside the working folder).
COPY Checkpoints /opt/ldm/Checkpoints
WORKDIR /opt/ldm
ENTRYPOINT ["/usr/local/bin/ldm"]
