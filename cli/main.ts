// The `tessera` command's dispatcher (cli/tessera.ts runs it). Each subcommand lives in its own file; this one only
// dispatches, answers --help and --version, and turns errors into a message and an exit code: 0 success, 1 the work
// failed (or found what it reports as a failure: a denial, a failing test, a lint problem), 2 the command was called
// wrongly.

import { readFileSync } from 'node:fs';
import {
  AUDIT_USAGE,
  CERTS_USAGE,
  EXPLAIN_USAGE,
  POLICY_USAGE,
  SERVE_USAGE,
  SIMULATE_USAGE,
  UsageError,
  USAGE_USAGE,
  VERSION_USAGE,
} from './help.ts';

const USAGE = `usage: tessera <command> [options]        tessera <command> --help for one command

commands:
  serve      run the admission webhook, the scheduler extender, the node agent or the fleet dispatcher
  explain    why a pod fits (or not) each node, and where bind would put it
  certs      issue and rotate the serving certificates
  policy     lint, test and apply policy files offline
  audit      report running pods that drifted from the current policy
  simulate   replay a GPU cluster trace through the placement core
  usage      GPU-hours per tenant, namespace and pool (chargeback), from Prometheus or snapshots
  version    print Tessera's and Node.js's versions

exit codes: 0 success; 1 failure (an error, a denial, a failing test, a lint problem); 2 wrong usage

${SERVE_USAGE}

${POLICY_USAGE}

${AUDIT_USAGE}

${EXPLAIN_USAGE}

${CERTS_USAGE}

${SIMULATE_USAGE}

${USAGE_USAGE}

${VERSION_USAGE}`;

function version(argv: string[]): number {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  if (argv.some((a) => a !== '--json')) throw new UsageError(`unexpected ${argv.join(' ')}`, VERSION_USAGE);
  // The bundle inlines this file into dist/tessera.mjs (cli/bundle.ts); the sources run it from cli/main.ts.
  const build = import.meta.url.endsWith('/dist/tessera.mjs') ? 'bundle' : 'sources';
  console.log(
    argv.includes('--json')
      ? JSON.stringify({ tessera: pkg.version, node: process.version, build })
      : `tessera ${pkg.version} (Node.js ${process.version}, ${build})`,
  );
  return 0;
}

type Command = (argv: string[]) => number | Promise<number>;

/** Each command is loaded only when it runs. */
const COMMANDS: Readonly<Record<string, { load: () => Promise<Command>; usage: string }>> = {
  serve: { load: async () => (await import('./serve.ts')).serveCommand, usage: SERVE_USAGE },
  policy: { load: async () => (await import('./policy.ts')).policyCommand, usage: POLICY_USAGE },
  audit: { load: async () => (await import('./audit.ts')).auditCommand, usage: AUDIT_USAGE },
  explain: { load: async () => (await import('./explain.ts')).explainCommand, usage: EXPLAIN_USAGE },
  certs: { load: async () => (await import('./certs.ts')).certsCommand, usage: CERTS_USAGE },
  simulate: { load: async () => (await import('./simulate.ts')).simulateCommand, usage: SIMULATE_USAGE },
  usage: { load: async () => (await import('./usage.ts')).usageCommand, usage: USAGE_USAGE },
  version: { load: async () => version, usage: VERSION_USAGE },
};

/** --help or -h anywhere before a `--` that ends the options. */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-V') return version(rest);
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    const about = command === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    if (command === undefined) console.error(USAGE);
    else console.log(about?.usage ?? USAGE);
    return command === undefined ? 2 : 0;
  }
  const entry = COMMANDS[command];
  if (!entry) {
    console.error(`tessera: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    console.log(entry.usage);
    return 0;
  }
  try {
    return await (await entry.load())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`tessera ${command}: ${e.message}\n\n${e.usage}`);
      return 2;
    }
    // node:util parseArgs: an unknown option, a missing value, a stray argument.
    if (String((e as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) {
      console.error(`tessera ${command}: ${(e as Error).message}\n\n${entry.usage}`);
      return 2;
    }
    console.error(`tessera ${command}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}
