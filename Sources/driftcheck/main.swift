import DriftcheckCLI

await DriftcheckMain.run()
