export { waitFor } from '../../src/process/wait';
