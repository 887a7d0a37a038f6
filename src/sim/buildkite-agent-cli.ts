/** Entry point of the `buildkite-agent` stand-in; the shim from `writeBuildkiteAgentShim` runs this file. */
import { main } from './buildkite-agent.js';

process.exitCode = await main(process.argv.slice(2));
