// What the global setups hand to the tests (through vitest's provide and inject).
declare module 'vitest' {
  export interface ProvidedContext {
    /** The workflow bundle (test/support/setup/workflow-bundle.ts), every tier. */
    workflowBundlePath: string;
    /** The services (test/support/setup/services.ts), integration and system tiers only. */
    temporalAddress: string;
    redisUrl: string;
    temporalCliPath: string;
  }
}

export {};
