import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { SEARCH_ATTRIBUTES } from '../../src/domain/workflow-api';
import { devServerSettingsFlags } from '../../tools/temporal/dev-server';

/**
 * A Temporal dev server of a test's own, through the SDK's test environment running the
 * project's temporal CLI (an existing path: nothing is downloaded): in memory, on a free port,
 * with the settings of temporal/dev-server.json and the workflow's search attributes, as
 * `npm start` runs it. Headless unless given a port for the Web UI; `extraArgs` add flags.
 * `teardown()` stops it.
 */
export async function startTestServer(
  cliPath: string,
  options: { extraArgs?: string[]; uiPort?: number } = {},
): Promise<TestWorkflowEnvironment> {
  // The SDK's runtime, unless the caller installed one: no signal handlers of its own.
  if (!Runtime._instance) {
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  }
  try {
    return await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: cliPath },
        ip: '127.0.0.1',
        namespace: 'default',
        searchAttributes: SEARCH_ATTRIBUTES,
        // The file's --log-level comes after the SDK's own and wins.
        extraArgs: [...devServerSettingsFlags(), ...(options.extraArgs ?? [])],
        ...(options.uiPort === undefined ? {} : { ui: true, uiPort: options.uiPort }),
      },
    });
  } catch (err) {
    throw new Error(`Could not start a Temporal dev server with ${cliPath}: ${String(err)}`, {
      cause: err,
    });
  }
}
