#!/usr/bin/env sh
# A private CA and a certificate for the broker host "kafka" (docker-compose.sasl-ssl.yml).
# Writes ca.pem and kafka-keystore.pem (Kafka's PEM keystore: key + certificate) beside this script.
set -eu
cd "$(dirname "$0")"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=lifecycle local CA" -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=kafka" -keyout kafka.key -out kafka.csr
printf "subjectAltName=DNS:kafka,DNS:localhost\nextendedKeyUsage=serverAuth\n" > kafka.ext
openssl x509 -req -in kafka.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -extfile kafka.ext -out kafka.pem
cat kafka.key kafka.pem > kafka-keystore.pem
rm -f kafka.csr kafka.ext ca.srl
echo "wrote $(pwd)/ca.pem and $(pwd)/kafka-keystore.pem"
