// The `bootstrap` executable of the provided.al2023 runtime.
let processStart = ContinuousClock.now
await ReportFunction.main(processStart: processStart)
