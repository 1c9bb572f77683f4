// The phases as the rest of the domain sees them: names and order, from the one list.
export {
  PHASES,
  PHASE_NAMES,
  isPhaseName,
  phaseNamed,
  activityOptions,
  selectInputs,
  type PhaseName,
} from '../phases';
export { MODEL_CALLS_PER_ATTEMPT, attemptTimeoutMs } from '../phases/phase';
