// What reading a node found wrong: problems make the node unusable for GPU work; warnings are inconsistencies Tessera
// resolved (and says how), worth a log line but not a refusal.

export interface Findings {
  readonly problems: string[];
  readonly warnings: string[];
}
