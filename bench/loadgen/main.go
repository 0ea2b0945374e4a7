// Command loadgen is the router benchmark's fixed-latency OpenAI-compatible backend and its load generator.
//
// Both are compiled so that neither caps the direct path: a Python backend and client top out near
// 2,500 req/s on two cores, below what vllm-router forwards, which made every ratio against it flattering.
//
//	loadgen serve --port 9000 --latency 20ms
//	loadgen load --url http://127.0.0.1:9000/v1/chat/completions --body body.json --concurrency 256 --duration 5s
//	loadgen load ... --requests 300 --concurrency 1   (sequential latency run)
//
// `load` prints one JSON object: requests, errors, seconds, rps, p50/p90/p99/max in seconds.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen serve|load [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "load":
		load(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

var reply = []byte(`{"id":"chatcmpl-go","object":"chat.completion","created":0,"model":"sim",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"The answer is \\boxed{42}."},` +
	`"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`)

func serve(args []string) {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	port := flags.Int("port", 0, "port on 127.0.0.1 (0: any free one, printed)")
	latency := flags.Duration("latency", 20*time.Millisecond, "delay before every answer")
	flags.Parse(args)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("/v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"list","data":[{"id":"sim","object":"model","owned_by":"loadgen"}]}`))
	})
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || !json.Valid(body) {
			http.Error(w, `{"error":{"message":"invalid JSON body","type":"invalid_request_error"}}`, 400)
			return
		}
		time.Sleep(*latency)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
		w.Write(reply)
	})
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("http://%s/v1\n", listener.Addr())
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50"`
	P90      float64 `json:"p90"`
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
	Error    string  `json:"first_error,omitempty"`
}

func load(args []string) {
	flags := flag.NewFlagSet("load", flag.ExitOnError)
	url := flags.String("url", "", "POST target")
	bodyFile := flags.String("body", "", "file with the JSON request body")
	concurrency := flags.Int("concurrency", 1, "clients, each with its own keep-alive connection")
	duration := flags.Duration("duration", 0, "run this long (or use --requests)")
	requests := flags.Int("requests", 0, "total requests (split over the clients)")
	warmup := flags.Int("warmup", 10, "requests per client before timing starts")
	timeout := flags.Duration("timeout", 30*time.Second, "per-request time-out")
	header := flags.String("header", "", "one extra header, Name: value")
	flags.Parse(args)
	body, err := os.ReadFile(*bodyFile)
	if err != nil || *url == "" {
		fmt.Fprintln(os.Stderr, "load needs --url and a readable --body file")
		os.Exit(2)
	}
	transport := &http.Transport{
		MaxIdleConns: *concurrency, MaxIdleConnsPerHost: *concurrency, MaxConnsPerHost: *concurrency,
		IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	var firstError atomic.Value
	once := func() (time.Duration, bool) {
		request, _ := http.NewRequest("POST", *url, bytes.NewReader(body))
		request.Header.Set("Content-Type", "application/json")
		if name, value, found := bytes.Cut([]byte(*header), []byte(":")); found {
			request.Header.Set(string(name), string(bytes.TrimSpace(value)))
		}
		started := time.Now()
		response, err := client.Do(request)
		if err != nil {
			firstError.CompareAndSwap(nil, err.Error())
			return time.Since(started), false
		}
		_, err = io.Copy(io.Discard, response.Body)
		response.Body.Close()
		if err == nil && response.StatusCode != 200 {
			err = fmt.Errorf("HTTP %d", response.StatusCode)
		}
		if err != nil {
			firstError.CompareAndSwap(nil, err.Error())
		}
		return time.Since(started), err == nil
	}
	var warm sync.WaitGroup
	for c := 0; c < *concurrency; c++ {
		warm.Add(1)
		go func() {
			defer warm.Done()
			for i := 0; i < *warmup; i++ {
				once()
			}
		}()
	}
	warm.Wait()
	var done, failed, issued atomic.Int64
	latencies := make([][]time.Duration, *concurrency)
	deadline := time.Now().Add(*duration)
	started := time.Now()
	var wait sync.WaitGroup
	for c := 0; c < *concurrency; c++ {
		wait.Add(1)
		go func(slot int) {
			defer wait.Done()
			for {
				if *requests > 0 && issued.Add(1) > int64(*requests) {
					return
				}
				if *requests == 0 && time.Now().After(deadline) {
					return
				}
				took, ok := once()
				if ok {
					done.Add(1)
					latencies[slot] = append(latencies[slot], took)
				} else {
					failed.Add(1)
				}
			}
		}(c)
	}
	wait.Wait()
	elapsed := time.Since(started).Seconds()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	quantile := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return all[int(q*float64(len(all)-1))].Seconds()
	}
	out := result{Requests: done.Load(), Errors: failed.Load(), Seconds: elapsed, RPS: float64(done.Load()) / elapsed,
		P50: quantile(0.5), P90: quantile(0.9), P99: quantile(0.99), Max: quantile(1)}
	if e, ok := firstError.Load().(string); ok {
		out.Error = e
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
