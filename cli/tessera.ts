#!/usr/bin/env node
// The `tessera` command. Each subcommand lives in its own file; this one only dispatches and turns errors into a
// message and an exit code.

import { AUDIT_USAGE, auditCommand } from './audit.ts';
import { CERTS_USAGE, certsCommand } from './certs.ts';
import { EXPLAIN_USAGE, explainCommand } from './explain.ts';
import { POLICY_USAGE, policyCommand } from './policy.ts';
import { SERVE_USAGE, serveCommand } from './serve.ts';
import { SIMULATE_USAGE, simulateCommand } from './simulate.ts';
import { UsageError } from './help.ts';
import { USAGE_USAGE, usageCommand } from './usage.ts';

const USAGE = `usage: tessera <command> [options]

commands:
  serve      run the admission webhook or the scheduler extender
  explain    why a pod fits (or not) each node, and where bind would put it
  certs      issue and rotate the serving certificates
  policy     lint, test and apply policy files offline
  audit      report running pods that drifted from the current policy
  simulate   replay a GPU cluster trace through the placement core
  usage      GPU-hours per tenant, namespace and pool (chargeback), from Prometheus or snapshots

${SERVE_USAGE}

${POLICY_USAGE}

${AUDIT_USAGE}

${EXPLAIN_USAGE}

${CERTS_USAGE}

${SIMULATE_USAGE}

${USAGE_USAGE}`;

const COMMANDS: Readonly<Record<string, (argv: string[]) => number | Promise<number>>> = {
  serve: serveCommand,
  policy: policyCommand,
  audit: auditCommand,
  explain: explainCommand,
  certs: certsCommand,
  simulate: simulateCommand,
  usage: usageCommand,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`tessera: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`tessera ${command}: ${e.message}\n\n${e.usage}`);
      return 2;
    }
    // node:util parseArgs: an unknown option, a missing value, a stray argument.
    if (String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) {
      console.error(`tessera ${command}: ${(e as Error).message}\n\nrun "tessera ${command} --help" for its options`);
      return 2;
    }
    console.error(`tessera ${command}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
