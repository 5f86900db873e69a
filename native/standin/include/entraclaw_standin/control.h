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

/* Filesystem path of the loaded stand-in library (for ctypes users). */
ENTRACLAW_STANDIN_CONTROL const char* standin_library_path(void);

#ifdef __cplusplus
}
#endif

/* advapi32 part: configurable account, file security table. */
#include "entraclaw_standin/advapi_control.h"

#endif /* ENTRACLAW_STANDIN_CONTROL_H */
