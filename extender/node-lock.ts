// Per-node critical sections: binds to one node run one after another, binds to different nodes in parallel.

export class NodeLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(node: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(node) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(node, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(node) === tail) this.tails.delete(node);
    }
  }
}
