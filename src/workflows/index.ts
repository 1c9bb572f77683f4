// The worker bundles this file into Temporal's deterministic sandbox: export workflows only.
export { decisionWorkflow } from './decision-workflow';
export { webhookDeliveryWorkflow } from './webhook-delivery';
