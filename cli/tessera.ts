#!/usr/bin/env node
// The `tessera` command (package.json bin): runs the dispatcher and exits with its code.

import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
