export { freePort } from '../../tools/process/ports';
