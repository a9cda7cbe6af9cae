// Package rec is baton's library of recommendation models: the data they
// read, the models, their one file format and their evaluation. It is a
// pure library (no HTTP, no store); the CLI (baton rec ...) and serving
// are front ends over it.
//
// Data: ReadDataset reads a catalog (title,name,genres,creator,
// new_creator,released[,markets]), optional members (member,market,joined)
// and interactions (member,title,ts[,event,weight,market]) into a
// Dataset with dense member and title indexes; errors name file, line and
// column (*csvtable.InputError, fault.Invalid). Dataset.Cut and CutAt make
// the held-out time split. Synthesize makes a World with planted tastes
// whose PPlay and PComplete answer "would member m play / complete title
// t", for tests and simulations.
//
// Models: Train(ctx, kind, dataset, params) returns a *Recommender of
// kind popularity, knn, als, ppr, blend or multitask; every kind answers
// the Model interface: Recommend (top N, seen titles excluded, filtered by
// the market through the catalog's markets), Score (given candidates) and
// Confidence (0 for an unknown member, who is answered from popularity
// without an error). A Recommender also carries the catalog metadata and
// popularity per market serving needs (Title, Popularity, History), and
// answers Similar (titles like a title, for a "Because you watched" row).
//
// File: Save writes, Load reads one format for every kind: the line
// "BATONREC <version> <kind>" then a gob body; Load refuses any other file
// with ErrNotModel. See docs/models.md, "Recommendation models".
//
// Evaluation: Evaluate computes recall@k, NDCG@k, MAP@k, completion
// NDCG, coverage, intra-list diversity, novelty, per-market recall and the
// exposure share of new creators on a held-out split. Batch: TopNAll
// walks every member's top N in parallel, in member order.
package rec
