"""A TLS front for a Unix socket, as a remote Docker engine's TLS listener is: it requires a client
certificate the given authority issued, and forwards the bytes to the socket.

Usage: tls_forward.py PORT CERT KEY CLIENT_CA SOCKET
Listens on 127.0.0.1:PORT; prints "listening" once it does and one line per connection it accepts.
(socat's OPENSSL-LISTEN cannot be used here: with client verification and no session id context set,
OpenSSL refuses the session resumption rustls attempts on the second connection.)
"""

import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(port, cert, key, client_ca, socket_path):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=client_ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED

    async def serve(client_reader, client_writer):
        print("accepted", flush=True)
        engine_reader, engine_writer = await asyncio.open_unix_connection(socket_path)
        await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port, cert, key, client_ca, socket_path = sys.argv[1:6]
    asyncio.run(main(int(port), cert, key, client_ca, socket_path))
