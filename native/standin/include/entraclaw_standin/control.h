/* Control API of the test-only stand-in: seed stores with real keys and
 * certificates, break things on purpose, and observe what the core did.
 * C linkage so tests in C++, Python (pybind or ctypes) and benchmarks share it.
 */
#ifndef ENTRACLAW_STANDIN_CONTROL_H
#define ENTRACLAW_STANDIN_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENTRACLAW_STANDIN_CONTROL __attribute__((visibility("default")))

/* Store locations, as in CERT_SYSTEM_STORE_*_ID. */
#define STANDIN_CURRENT_USER 1
#define STANDIN_LOCAL_MACHINE 2

/* Forget every store, key, fault, counter and setting (handles still open are
 * leaked into a graveyard so late frees stay valid). */
ENTRACLAW_STANDIN_CONTROL void standin_reset(void);

/* Add a DER certificate to `location`'s My store. When key_der (PKCS#8 or
 * PKCS#1 DER RSA private key) is given, the key is stored in provider
 * `provider` (UTF-8, e.g. "Microsoft Software Key Storage Provider") under
 * container `container` and linked to the certificate. Returns 0 or an HRESULT. */
ENTRACLAW_STANDIN_CONTROL int32_t standin_add_certificate(int location, const uint8_t* cert_der, size_t cert_len,
                                                          const uint8_t* key_der, size_t key_len,
                                                          const char* provider, const char* container, int exportable);

/* Delete a key out of band (as if someone removed it with certutil);
 * handles already open to it go stale. Returns 1 if the key existed. */
ENTRACLAW_STANDIN_CONTROL int standin_remove_key(const char* provider, const char* container);
/* Make every handle already open to a key stale (NTE_INVALID_HANDLE on use)
 * while the key stays: what a TPM resource-manager eviction or a key isolation
 * service restart does. A handle opened afterwards works. Returns 1 if the key
 * existed. */
ENTRACLAW_STANDIN_CONTROL int standin_evict_key(const char* provider, const char* container);
/* Whether a key container exists in provider. */
ENTRACLAW_STANDIN_CONTROL int standin_key_exists(const char* provider, const char* container);
/* Number of certificates in a store. */
ENTRACLAW_STANDIN_CONTROL int standin_certificate_count(int location);

/* Make `function` (SDK name) fail with `status`: `times` > 0 for the next N
 * calls, -1 for every call. `skip` calls succeed first. Faults on one function
 * queue in order. */
ENTRACLAW_STANDIN_CONTROL int standin_fail(const char* function, int32_t status, int times, int skip);
ENTRACLAW_STANDIN_CONTROL void standin_clear_faults(void);

/* Make a provider unavailable: NCryptOpenStorageProvider returns `status` (0 = available again). */
ENTRACLAW_STANDIN_CONTROL void standin_set_provider_status(const char* provider, int32_t status);

/* Device latency inside NCryptSignHash (microseconds), and "null signature"
 * mode: NCryptSignHash returns zero bytes of the right length without RSA. */
ENTRACLAW_STANDIN_CONTROL void standin_set_sign_latency_us(uint32_t microseconds);
ENTRACLAW_STANDIN_CONTROL void standin_set_null_signature(int enabled);

/* CryptAcquireCertificatePrivateKey reports pfCallerFreeProv = `caller_frees`.
 * When 0 the stand-in owns the key handle and frees it with the certificate
 * context, as Windows does for keys cached on the context. */
ENTRACLAW_STANDIN_CONTROL void standin_set_caller_frees_key(int caller_frees);

/* Per-function call counters (faulted calls count too). */
ENTRACLAW_STANDIN_CONTROL uint64_t standin_call_count(const char* function);
ENTRACLAW_STANDIN_CONTROL uint64_t standin_total_calls(void);
ENTRACLAW_STANDIN_CONTROL void standin_reset_counters(void);

/* Open handles by kind ("store", "certificate", "key", "provider", "local",
 * or NULL for all), and frees of handles that were not open (double frees,
 * frees of handles the caller did not own). Both must be 0 after a clean run. */
ENTRACLAW_STANDIN_CONTROL int64_t standin_open_handles(const char* kind);
ENTRACLAW_STANDIN_CONTROL uint64_t standin_invalid_frees(void);

/* ---- TPM behaviour ----
 * Per-key options (the key must exist): "hardware" (NCRYPT_IMPL_TYPE_PROPERTY
 * reads NCRYPT_IMPL_HARDWARE_FLAG), "pss_salt" (what "PSS Salt Size" reads:
 * NCRYPT_TPM_PSS_SALT_SIZE_*; MAXIMUM makes the key sign PSS only with the
 * maximum salt), "pss_zero_signature" (a max-salt TPM returns an all-zero
 * signature instead of TPM_E_PCP_UNSUPPORTED_PSS_SALT), "ui_policy" (signing
 * needs a dialog), "export_policy" (raw value NCRYPT_EXPORT_POLICY_PROPERTY
 * reads, PCP quirk), "legacy_spec" (dwLegacyKeySpec NCryptOpenKey must pass),
 * "tpma" (TPMA_OBJECT the key's claim reports; 0 = derived from the key
 * usage), "key_usage" (NCRYPT_KEY_USAGE_PROPERTY, default
 * NCRYPT_ALLOW_ALL_USAGES), "key_usage_readable" (0: the key refuses to
 * report its usage), "pss_salt_on_key" (0: the key handle does not answer
 * "PSS Salt Size"; see standin_set_provider_pss_salt). Returns 0 or -1. */
ENTRACLAW_STANDIN_CONTROL int standin_set_key_option(const char* provider, const char* container, const char* option,
                                                     int64_t value);
/* Rewrite the key link of the certificate with SHA-1 `sha1` (20 bytes):
 * dwProvType, dwKeySpec, and (when not NULL) the provider name. */
ENTRACLAW_STANDIN_CONTROL int standin_set_link(int location, const uint8_t* sha1, uint32_t prov_type, uint32_t key_spec,
                                               const char* provider);
/* Calls to `function` (NULL = all) that accept a silent flag and did not pass
 * it; dialogs a UI-policy key would have shown; the most NCryptSignHash calls
 * that overlapped on one key, for hardware (1) or software (0) keys. */
ENTRACLAW_STANDIN_CONTROL uint64_t standin_calls_without_silent(const char* function);
ENTRACLAW_STANDIN_CONTROL uint64_t standin_ui_prompts(void);
ENTRACLAW_STANDIN_CONTROL int standin_max_sign_overlap(int hardware);
/* Largest RSA key the "TPM" makes (default 2048): larger ones fail in
 * NCryptFinalizeKey with NTE_NOT_SUPPORTED. */
ENTRACLAW_STANDIN_CONTROL void standin_set_tpm_max_bits(uint32_t bits);
/* What "PSS Salt Size" reads on a Platform provider handle
 * (NCRYPT_TPM_PSS_SALT_SIZE_*); -1 (the default): the provider does not answer. */
ENTRACLAW_STANDIN_CONTROL void standin_set_provider_pss_salt(int64_t value);
/* Attestation: an AIK (restricted signing key) in the Platform provider, its
 * public key (DER SubjectPublicKeyInfo; returns the length, -1 if absent), the
 * EK certificate PCP_EKCERT reads, and claim tampering for negative tests
 * (0 none, 1 truncated, 2 wrong TPM_GENERATED magic, 3 attested name of
 * another key, 4 signature byte flipped). */
ENTRACLAW_STANDIN_CONTROL int32_t standin_create_aik(const char* container);
ENTRACLAW_STANDIN_CONTROL int64_t standin_key_public_der(const char* provider, const char* container, uint8_t* out,
                                                         size_t capacity);
/* TPM2B_PUBLIC of a hardware key (an AIK's is what a relying party enrolls);
 * returns the length, -1 if absent or not in the "TPM". */
ENTRACLAW_STANDIN_CONTROL int64_t standin_key_tpm_public(const char* provider, const char* container, uint8_t* out,
                                                         size_t capacity);
ENTRACLAW_STANDIN_CONTROL void standin_set_ek_certificate(const uint8_t* der, size_t len);
ENTRACLAW_STANDIN_CONTROL void standin_set_claim_tamper(int mode);
/* 0: NCryptSetProperty on a Platform (hardware) key refuses any dwFlags != 0
 * with NTE_BAD_FLAGS, as a PCP that supports none (default 1: flags taken). */
ENTRACLAW_STANDIN_CONTROL void standin_set_pcp_setproperty_flags(int accepted);
/* Add a new self-signed certificate (CN `common_name`) over the key of the
 * certificate `existing_der` in `location`, linked to the same provider and
 * container: a renewal on the same key. Returns 0 or an HRESULT. */
ENTRACLAW_STANDIN_CONTROL int32_t standin_add_linked_certificate(int location, const uint8_t* existing_der, size_t len,
                                                                 const char* common_name);
/* The My store of `location` does not exist until someone opens it without
 * CERT_STORE_OPEN_EXISTING_FLAG (a profile that never had one). */
ENTRACLAW_STANDIN_CONTROL void standin_set_store_missing(int location, int missing);
ENTRACLAW_STANDIN_CONTROL int standin_store_exists(int location);

/* Filesystem path of the loaded stand-in library (for ctypes users). */
ENTRACLAW_STANDIN_CONTROL const char* standin_library_path(void);

#ifdef __cplusplus
}
#endif

/* advapi32 part: configurable account, file security table. */
#include "entraclaw_standin/advapi_control.h"

#endif /* ENTRACLAW_STANDIN_CONTROL_H */
