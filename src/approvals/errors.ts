import { PortError } from '../errors.js';

/** A refused approval action; the message says why in one sentence. */
export class ApprovalError extends PortError {}
