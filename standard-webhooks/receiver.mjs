// The app's side of stripe-manager's events, verified with the Standard Webhooks
// reference package (npm `standardwebhooks`), not with stripe-manager's own code.
//
// node receiver.mjs SECRET COUNT: listens on 127.0.0.1 (a free port, printed first as
// {"port":N}), verifies every request's signature, checks that a tampered body or an
// old timestamp fails, prints each verified event as a JSON line, and exits 0 after
// COUNT events (1 on the first that does not verify; 2 after 60 s without them).
import http from "node:http";
import { Webhook } from "standardwebhooks";

const [secret, count] = [process.argv[2], Number(process.argv[3] || 1)];
const wh = new Webhook(secret);
let seen = 0;

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    let event;
    try {
      event = wh.verify(body, headers);
    } catch (e) {
      console.log(JSON.stringify({ error: String(e), headers, body }));
      res.writeHead(400).end();
      process.exit(1);
    }
    // Negative controls: the same signature must not verify another body, nor an old time.
    for (const [what, b, h] of [
      ["tampered body", body + " ", headers],
      ["old timestamp", body, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 3600) }],
    ]) {
      let verified = false;
      try {
        wh.verify(b, h);
        verified = true;
      } catch {}
      if (verified) {
        console.log(JSON.stringify({ error: `a ${what} verified` }));
        process.exit(1);
      }
    }
    console.log(JSON.stringify({ id: headers["webhook-id"], type: event.type, data: event.data }));
    res.writeHead(204).end();
    seen += 1;
    if (seen >= count) {
      server.close();
      process.exit(0);
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
setTimeout(() => {
  console.log(JSON.stringify({ error: `only ${seen} of ${count} events in 60 s` }));
  process.exit(2);
}, 60_000);
