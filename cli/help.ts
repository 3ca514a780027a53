// A mistake in how a command was called (unknown option, missing or malformed argument): the CLI prints the message
// and the command's usage and exits 2, where a failure of the work itself exits 1.

export class UsageError extends Error {
  override name = 'UsageError';
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.usage = usage;
  }
}
