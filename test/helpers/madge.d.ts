/** The part of madge's API the architecture test uses (madge ships no types). */
declare module 'madge' {
  interface MadgeResult {
    /** Each module and the modules it imports. */
    obj(): Record<string, string[]>;
    /** Each import cycle, as the modules on it. */
    circular(): string[][];
  }
  function madge(path: string, config?: { fileExtensions?: string[]; tsConfig?: string }): Promise<MadgeResult>;
  export default madge;
}
