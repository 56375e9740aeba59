#!/usr/bin/env bash
# libFuzzer targets over the pure parsers and the differ. Each target is the core sources
# (and, for wiremock, the engine's matching and response files; for config, the
# driftcheck.yml parser over Yams) compiled with -sanitize=fuzzer,address around one entry
# point in fuzz/.
# Usage: scripts/fuzz.sh [TARGET...]   (SECONDS per target, default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-600}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(json-differ endpoint har wiremock config matchers mock-yml grpc)
mkdir -p .build-fuzz
failed=0
core=(Sources/DriftcheckCore/*.swift)
# WireMock's XML and date-time matchers, on libxml2 through the CLibXML2 module map.
matchers=(Sources/DriftcheckWireMock/XMLMatching.swift Sources/DriftcheckWireMock/DateMatching.swift)
for target in "${targets[@]}"; do
  case "$target" in
    json-differ) sources=("${core[@]}" fuzz/JSONDifferFuzz.swift) ;;
    endpoint) sources=("${core[@]}" fuzz/EndpointFuzz.swift) ;;
    har) sources=("${core[@]}" fuzz/HARFuzz.swift) ;;
    grpc) sources=("${core[@]}" fuzz/GRPCFuzz.swift) ;;
    wiremock) sources=("${core[@]}" "${matchers[@]}" Sources/DriftcheckWireMock/WireMockMatching.swift Sources/DriftcheckWireMock/WireMockResponse.swift fuzz/WireMockFuzz.swift) ;;
    mock-yml) sources=("${core[@]}" Sources/DriftcheckYAML/SafeYAML.swift Sources/DriftcheckWireMock/MockConfigurationError.swift Sources/DriftcheckMocks/MockDirectory.swift fuzz/MockYmlFuzz.swift) ;;
    matchers) sources=("${core[@]}" "${matchers[@]}" Sources/DriftcheckWireMock/WireMockMatching.swift fuzz/MatchersFuzz.swift) ;;
    config) sources=("${core[@]}" Sources/DriftcheckYAML/SafeYAML.swift Sources/DriftcheckCLI/ConfigFile.swift Sources/DriftcheckCLI/UsageError.swift fuzz/ConfigFuzz.swift) ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  echo "== $target: building" >&2
  # The wiremock files import the core module by name; compiling them into one module needs no import.
  tmp=.build-fuzz/$target-src; rm -rf "$tmp"; mkdir -p "$tmp"
  for file in "${sources[@]}"; do sed -E '/^(@_exported )?import Driftcheck(Core|YAML|WireMock)$/d' "$file" > "$tmp/$(basename "$file")"; done
  extra=()
  if [ "$target" = wiremock ] || [ "$target" = matchers ]; then
    extra=(-I Sources/CLibXML2 -Xcc -I/usr/include/libxml2 -lxml2)
  fi
  if [ "$target" = config ] || [ "$target" = mock-yml ]; then
    # Yams and its C parser, instrumented too, from the checkout SwiftPM resolved.
    [ -d .build/checkouts/Yams ] || swift package resolve >&2
    yams=.build/checkouts/Yams/Sources
    lib=.build-fuzz/yams; rm -rf "$lib"; mkdir -p "$lib"
    for file in "$yams"/CYaml/src/*.c; do
      clang -c -O1 -fsanitize=fuzzer-no-link,address -I "$yams/CYaml/include" "$file" -o "$lib/$(basename "$file" .c).o"
    done
    swiftc -O -sanitize=fuzzer,address -parse-as-library -emit-library -static -emit-module -module-name Yams -DSWIFT_PACKAGE \
      -I "$yams/CYaml/include" "$yams"/Yams/*.swift -emit-module-path "$lib/Yams.swiftmodule" -o "$lib/libYams.a"
    extra=(-I "$lib" -I "$yams/CYaml/include" -L "$lib" -lYams "$lib"/*.o)
  fi
  swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name DriftcheckCore "$tmp"/*.swift "${extra[@]}" \
    -o ".build-fuzz/$target"
  mkdir -p "fuzz/corpus/$target" ".build-fuzz/$target-corpus" ".build-fuzz/$target-crashes"
  echo "== $target: fuzzing for ${SECONDS_PER_TARGET}s" >&2
  # A crash stops this target, not the others; its input is left in .build-fuzz/TARGET-crashes/.
  # swift-corelibs-foundation keeps a few allocations for good — DateFormatter's character sets,
  # the regex a failed NSRegularExpression init compiled — so leak detection is off where dates
  # are parsed or mapping regexes compiled.
  leaks=1
  if [ "$target" = matchers ] || [ "$target" = wiremock ] || [ "$target" = endpoint ]; then leaks=0; fi
  if ASAN_OPTIONS="detect_leaks=$leaks" ".build-fuzz/$target" -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -detect_leaks=$leaks \
    -artifact_prefix=".build-fuzz/$target-crashes/" ".build-fuzz/$target-corpus" "fuzz/corpus/$target" \
    > ".build-fuzz/$target.log" 2>&1; then
    grep -E "^Done [0-9]+ runs" ".build-fuzz/$target.log" || tail -n 1 ".build-fuzz/$target.log"
  else
    echo "$target: CRASH, see .build-fuzz/$target.log and .build-fuzz/$target-crashes/"
    failed=1
  fi
done
exit "$failed"
