export { freePort } from '../../src/process/ports';
