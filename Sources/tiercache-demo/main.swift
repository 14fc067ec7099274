// `tiercache-demo`: the cold-start demo of the README's main-job command (`./scripts/demo.sh`).
//
// It starts N fresh child processes of the report function (this same executable with
// `--function`), each a new "environment" (empty memory, a fresh /tmp folder), against the
// loopback Lambda Runtime API emulator: first without the cache (every INIT is the full
// initialization), then with it, hydrating from a local folder standing in for the bucket (or a
// real S3 endpoint with --s3-endpoint/--bucket). It prints full-init vs hydrated cold starts.
let processStart = ContinuousClock.now
if CommandLine.arguments.dropFirst().first == "--function" {
    await ReportFunction.main(processStart: processStart)
}
await Demo.main()
