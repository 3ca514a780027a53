// What policy compilation reads and reports: named file texts in, problems that point into them out.

export interface PolicyFile {
  /** A name for messages, e.g. the file path. */
  readonly name: string;
  readonly text: string;
}

export interface PolicyProblem {
  readonly file: string;
  /** JSON pointer into the file's document, e.g. /spec/pools/1/fractionMode. */
  readonly path: string;
  readonly message: string;
}

export function formatProblem(p: PolicyProblem): string {
  return `${p.file}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}
