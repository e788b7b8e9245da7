#!/usr/bin/env node
// `ballot`: one entry point for every Ballot tool. Each package contributes its commands.
import { Command } from 'commander';
import { registerRaftCommands, registerSimCommand } from '@ballot/raft';
import { registerKvCommands } from '@ballot/kvstore';
import { registerChaosCommands, registerCheckCommand } from '@ballot/chaos';
import { registerBenchCommand } from '@ballot/bench';

const program = new Command();
program
  .name('ballot')
  .description('Ballot: a from-scratch Raft log, an etcd-like store and a Kubernetes control plane, built to be broken on purpose.')
  .showHelpAfterError();

registerRaftCommands(program);
registerSimCommand(program);
registerKvCommands(program);
registerCheckCommand(program);
registerChaosCommands(program);
registerBenchCommand(program);

// Exit 1 means 'invalid' to `ballot check` and `ballot chaos`; an unexpected throw is an error (exit 2).
try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.stderr.write(`ballot: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
}
