// Names Tessera adds for DRA.

/**
 * The marker resource the webhook gives a pod whose GPUs come from DRA claims alone, so that kube-scheduler calls the
 * extender for it (the extender lists it in managedResources with ignoredByScheduler: true). One unit per pod.
 */
export const DRA_CLAIMS_RESOURCE = 'tessera.io/dra-claims';
