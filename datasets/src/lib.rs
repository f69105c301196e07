//! ECG data in and out: WFDB records and annotations, MIT-BIH and PTB-XL adapters.
