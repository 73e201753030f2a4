//! InferenceStack v1alpha1 (filled in by the operator work).
