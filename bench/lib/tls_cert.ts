/**
 * A self-signed certificate for tests, made with openssl: an end entity
 * (CA:FALSE, serverAuth) for localhost and 127.0.0.1, which rustls (Deno's
 * fetch with `caCerts`) and curl (`--cacert`) both accept.
 *
 * @module
 */

/** PEM certificate and key. */
export interface TestCert {
  cert: string;
  key: string;
}

/** Makes a fresh certificate and key. */
export async function selfSignedCert(): Promise<TestCert> {
  const dir = await Deno.makeTempDir();
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!made.success) {
      throw new Error(
        `openssl could not make a certificate: ${
          new TextDecoder().decode(made.stderr)
        }`,
      );
    }
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
