/** Failure types a model call ends in; the non-retryable ones fail the decision at once. */
export const ModelErrorType = {
  RateLimited: 'ModelRateLimited',
  Unavailable: 'ModelUnavailable',
  Timeout: 'ModelTimeout',
  Connection: 'ModelConnectionError',
  BadResponse: 'ModelBadResponse',
  InvalidOutput: 'InvalidModelOutput',
  InvalidRequest: 'ModelInvalidRequest',
  Authentication: 'ModelAuthenticationError',
  NotFound: 'ModelNotFound',
  ContentRefused: 'ModelContentRefused',
  Cancelled: 'ModelCallCancelled',
  OutputTooLarge: 'OutputTooLarge',
} as const;

/**
 * Failure types whose messages this project writes itself, and so may show to every reader of a
 * decision. Any other error's message (a library's, a server's) stays in the worker's log.
 */
export const OWN_FAILURE_TYPES: ReadonlySet<string> = new Set([
  ...Object.values(ModelErrorType),
  'InvalidPhaseInput',
  'InvalidPhaseOutput',
  'PayloadTooLarge',
  'BudgetExceeded',
  'BudgetUnavailable',
  // A call that would have waited for the provider's limit past its attempt's deadline.
  'ProviderLimitWait',
]);
